"""The renderer of the chart follows Go text/template and Sprig where the chart relies on them;
each case states what Helm prints for it."""

from __future__ import annotations

from typing import Any

import pytest
from chart.execute import Executor, go_number
from chart.functions import FUNCTIONS
from chart.gotemplate import Node, TemplateError, parse


def render(source: str, data: Any = None) -> str:
    defines: dict[str, list[Node]] = {}
    nodes = parse(source, defines)
    return Executor(FUNCTIONS, defines).render(nodes, data)


def test_trim_markers_remove_whitespace_and_newlines_on_their_side() -> None:
    assert render("a  \n {{- 1 }} b") == "a1 b"
    assert render("a {{ 1 -}} \n\n b") == "a 1b"
    assert render("x\n{{- /* a comment */ -}}\ny") == "xy"


def test_if_else_if_else_follow_go_truthiness() -> None:
    source = "{{ if .a }}A{{ else if .b }}B{{ else }}C{{ end }}"
    assert render(source, {"a": [1], "b": 1}) == "A"
    assert render(source, {"a": [], "b": "x"}) == "B"
    assert render(source, {"a": {}, "b": 0.0}) == "C"
    assert render(source, {}) == "C"  # missing keys are nil, which is false


def test_range_over_a_map_visits_keys_in_sorted_order_with_both_variables() -> None:
    source = "{{ range $k, $v := .m }}{{ $k }}={{ $v }};{{ end }}"
    assert render(source, {"m": {"b": 2, "a": 1, "c": 3}}) == "a=1;b=2;c=3;"
    assert render("{{ range .l }}[{{ . }}]{{ else }}none{{ end }}", {"l": []}) == "none"


def test_with_rebinds_the_dot_and_dollar_is_the_root() -> None:
    data = {"inner": {"x": "in"}, "x": "root"}
    assert render("{{ with .inner }}{{ .x }}/{{ $.x }}{{ end }}", data) == "in/root"


def test_define_and_include_render_a_named_template_with_its_argument() -> None:
    source = (
        '{{- define "greet" -}}hi {{ .name }}{{- end -}}'
        '{{ include "greet" (dict "name" "x") | upper }}'
    )
    assert render(source) == "HI X"


def test_variables_are_scoped_and_assignable() -> None:
    source = "{{ $x := 1 }}{{ if true }}{{ $x = 2 }}{{ end }}{{ $x }}"
    assert render(source) == "2"


def test_pipeline_appends_the_piped_value_as_the_last_argument() -> None:
    assert render('{{ .v | default "d" | quote }}', {"v": ""}) == '"d"'
    assert render('{{ printf "%s-%s" "a" "b" | trunc 3 }}') == "a-b"


def test_and_or_return_an_operand_and_short_circuit() -> None:
    assert render("{{ or .a .b }}", {"a": "", "b": "y"}) == "y"
    assert render("{{ and .a .missing.field }}", {"a": ""}) == ""  # never evaluates the field


def test_numbers_print_as_go_prints_a_float64() -> None:
    assert go_number(50051.0) == "50051"
    assert go_number(1_000_000.0) == "1e+06"
    assert go_number(0.01) == "0.01"
    assert go_number(0.00001) == "1e-05"
    assert render("{{ .n }}|{{ .n | int }}", {"n": 1_000_000.0}) == "1e+06|1000000"


def test_printf_d_of_a_float_shows_the_go_error_text() -> None:
    # Helm reads values as float64: a template must convert with `int` before %d.
    assert render('{{ printf "%d" .p }}', {"p": 80.0}) == "%!d(float64=80)"


def test_to_yaml_sorts_keys_and_trims_the_last_newline_and_nindent_pads_every_line() -> None:
    out = render("x:{{ toYaml .v | nindent 2 }}", {"v": {"b": [1.0, "t"], "a": True}})
    assert out == "x:\n  a: true\n  b:\n  - 1\n  - t"


def test_field_of_nil_is_an_error_and_unknown_functions_are_refused() -> None:
    with pytest.raises(TemplateError, match="nil pointer"):
        render("{{ .a.b }}", {})
    with pytest.raises(TemplateError, match="outside the supported subset"):
        render("{{ lookup 1 }}")
    with pytest.raises(TemplateError, match="incompatible types"):
        render("{{ eq .n 1 }}", {"n": 1.0})


def test_required_fails_with_its_message() -> None:
    with pytest.raises(TemplateError, match="give me x"):
        render('{{ required "give me x" .x }}', {})
