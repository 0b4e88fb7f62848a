// Verdict console: charts, live results (server-sent events), the step-by-step form.
// Progressive enhancement: every page works as plain HTML; this adds what needs a script.
(function () {
  "use strict";

  const COLORS = { win: "#136c2e", loss: "#b42318", inconclusive: "#5b6270", unknown: "#9aa1ad" };
  const PALETTE = ["#3b3fd8", "#d9480f", "#0b7a75", "#a61e4d", "#5c940d", "#862e9c"];
  const charts = new Map();

  function csrfToken() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  // Every htmx request carries the session's CSRF token.
  document.addEventListener("htmx:configRequest", function (event) {
    event.detail.headers["X-CSRF-Token"] = csrfToken();
  });

  // ---- charts --------------------------------------------------------------------------------
  function chartData(el) {
    const source = document.getElementById(el.dataset.chart);
    return source ? JSON.parse(source.textContent) : null;
  }

  function pct(x) { return x === null || x === undefined ? "—" : (x * 100).toFixed(1) + " %"; }
  function num(x) { return x === null || x === undefined ? "—" : Number(x.toPrecision(3)).toString(); }

  function currentScale(root) {
    const checked = root && root.querySelector("[data-scale-toggle] input:checked");
    return checked ? checked.value : "relative";
  }

  function forestOption(data, scale) {
    const rows = data.rows;
    const fmt = scale === "relative" ? pct : num;
    const labels = rows.map(function (r) { return r.label; });
    const points = rows.map(function (r, i) {
      const v = r[scale];
      return { value: [v[1], i, v[0], v[2]], itemStyle: { color: COLORS[r.verdict] || COLORS.unknown } };
    });
    const narrow = window.innerWidth < 600;
    return {
      animation: false,
      grid: { left: 8, right: 24, top: 12, bottom: 28, containLabel: true },
      tooltip: {
        trigger: "item",
        formatter: function (p) {
          const r = rows[p.value[1]];
          const v = r[scale];
          return r.label + "<br>" + fmt(v[1]) + "  [" + fmt(v[0]) + ", " + fmt(v[2]) + "]" +
            (r.anytime ? "<br>anytime-valid" : "");
        },
      },
      xAxis: {
        type: "value", scale: false, splitNumber: narrow ? 3 : 6,
        axisLabel: { formatter: function (v) { return scale === "relative" ? (v * 100).toFixed(0) + " %" : num(v); } },
        splitLine: { lineStyle: { color: "#eceef2" } },
      },
      yAxis: { type: "category", data: labels, inverse: true, axisTick: { show: false },
               axisLabel: { width: narrow ? 96 : 180, overflow: "truncate", color: "#3d4450" } },
      series: [{
        type: "custom",
        renderItem: function (params, api) {
          const y = api.coord([0, api.value(1)])[1];
          const from = api.coord([api.value(2), api.value(1)]);
          const to = api.coord([api.value(3), api.value(1)]);
          const mid = api.coord([api.value(0), api.value(1)]);
          const color = api.visual("color");
          const children = [];
          if (isFinite(api.value(2)) && isFinite(api.value(3))) {
            children.push({ type: "line", shape: { x1: from[0], y1: y, x2: to[0], y2: y }, style: { stroke: color, lineWidth: 6, opacity: 0.35 } });
          }
          children.push({ type: "circle", shape: { cx: mid[0], cy: y, r: 5 }, style: { fill: color } });
          return { type: "group", children: children };
        },
        encode: { x: [0, 2, 3], y: 1 },
        data: points,
        markLine: { silent: true, symbol: "none", data: [{ xAxis: 0 }], lineStyle: { color: "#16181d", type: "solid", width: 1 }, label: { show: false } },
      }],
    };
  }

  function overTimeOption(data) {
    const series = [];
    Object.keys(data.series).forEach(function (variant, i) {
      const color = PALETTE[i % PALETTE.length];
      const points = data.series[variant];
      series.push({ name: variant + " lower", type: "line", stack: "band-" + variant, stackStrategy: "all", symbol: "none",
        lineStyle: { opacity: 0 }, data: points.map(function (p) { return [p[0], p[2]]; }), tooltip: { show: false } });
      series.push({ name: variant + " interval", type: "line", stack: "band-" + variant, stackStrategy: "all", symbol: "none",
        lineStyle: { opacity: 0 }, areaStyle: { color: color, opacity: 0.15 },
        data: points.map(function (p) { return [p[0], p[3] !== null && p[2] !== null ? p[3] - p[2] : null]; }), tooltip: { show: false } });
      series.push({ name: variant, type: "line", symbol: "circle", symbolSize: 5, color: color,
        data: points.map(function (p) { return [p[0], p[1], p[2], p[3]]; }) });
    });
    return {
      animation: false,
      grid: { left: 8, right: 24, top: 36, bottom: 28, containLabel: true },
      legend: { data: Object.keys(data.series), top: 0 },
      tooltip: { trigger: "axis", formatter: function (items) {
        const lines = items.filter(function (it) { return it.value && it.value.length === 4; }).map(function (it) {
          return it.seriesName + ": " + pct(it.value[1]) + "  [" + pct(it.value[2]) + ", " + pct(it.value[3]) + "]";
        });
        return items.length ? new Date(items[0].value[0]).toLocaleString() + "<br>" + lines.join("<br>") : "";
      } },
      xAxis: { type: "time" },
      yAxis: { type: "value", axisLabel: { formatter: function (v) { return (v * 100).toFixed(0) + " %"; } },
               splitLine: { lineStyle: { color: "#eceef2" } } },
      series: series.concat([{ type: "line", data: [], markLine: { silent: true, symbol: "none", data: [{ yAxis: 0 }], lineStyle: { color: "#16181d", type: "solid" }, label: { show: false } } }]),
    };
  }

  function exposuresOption(data) {
    const series = [];
    // A line needs two days; before that, each day's point is drawn as a dot.
    const symbol = data.days.length < 2 ? "circle" : "none";
    Object.keys(data.observed).forEach(function (variant, i) {
      const color = PALETTE[i % PALETTE.length];
      series.push({ name: variant, type: "line", color: color, symbol: symbol, symbolSize: 8, data: data.observed[variant] });
      series.push({ name: variant + " planned", type: "line", color: color, symbol: "none",
        lineStyle: { type: "dashed", width: 1 }, data: data.planned[variant] });
    });
    return {
      animation: false,
      grid: { left: 8, right: 16, top: 36, bottom: 28, containLabel: true },
      legend: { top: 0, data: Object.keys(data.observed) },
      tooltip: { trigger: "axis" },
      xAxis: { type: "category", data: data.days },
      yAxis: { type: "value", splitLine: { lineStyle: { color: "#eceef2" } } },
      series: series,
    };
  }

  function drawCharts(root) {
    if (!window.echarts) { return; }
    (root || document).querySelectorAll("[data-chart]").forEach(function (el) {
      const data = chartData(el);
      if (!data) { return; }
      let option;
      if (data.kind === "forest") {
        el.style.height = Math.max(140, 44 + data.rows.length * 34) + "px";
        option = forestOption(data, currentScale(el.closest("[data-scale-root]")));
      } else if (data.kind === "overtime") {
        option = overTimeOption(data);
      } else if (data.kind === "exposures") {
        option = exposuresOption(data);
      } else { return; }
      const old = echarts.getInstanceByDom(el);
      if (old) { old.dispose(); }
      const chart = echarts.init(el, null, { renderer: "canvas" });
      chart.setOption(option);
      el.dataset.drawn = "true";
      charts.set(el, chart);
    });
  }

  window.addEventListener("resize", function () {
    charts.forEach(function (chart, el) { if (document.body.contains(el)) { chart.resize(); } else { charts.delete(el); } });
  });

  // ---- results: scale toggle, relative times ---------------------------------------------------
  let preferredScale = "relative";

  function applyScale(root) {
    if (!root) { return; }
    root.querySelectorAll("[data-scale-toggle] input").forEach(function (input) { input.checked = input.value === preferredScale; });
    root.querySelectorAll("[data-scale]").forEach(function (el) { el.hidden = el.dataset.scale !== preferredScale; });
    root.querySelectorAll("[data-chart]").forEach(function (el) {
      const data = chartData(el);
      const chart = window.echarts && echarts.getInstanceByDom(el);
      if (data && data.kind === "forest" && chart) { chart.setOption(forestOption(data, preferredScale), true); }
    });
  }

  document.addEventListener("change", function (event) {
    const input = event.target;
    if (input.closest && input.closest("[data-scale-toggle]")) {
      preferredScale = input.value;
      applyScale(input.closest("[data-scale-root]"));
    }
    if (input.matches && input.matches("select[data-autosubmit]")) { input.form.submit(); }
  });

  function since(iso) {
    const seconds = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
    if (seconds < 90) { return Math.floor(seconds) + " s ago"; }
    if (seconds < 5400) { return Math.round(seconds / 60) + " min ago"; }
    if (seconds < 129600) { return Math.round(seconds / 3600) + " h ago"; }
    return Math.round(seconds / 86400) + " days ago";
  }
  // The clock ticks in the browser; nothing is fetched.
  setInterval(function () {
    document.querySelectorAll("[data-since]").forEach(function (el) { el.textContent = since(el.dataset.since); });
  }, 1000);

  // ---- live results ----------------------------------------------------------------------------
  function startLive() {
    const panel = document.querySelector("[data-live-url]");
    if (!panel || !window.EventSource) { return; }
    const status = document.getElementById("live-status");
    const say = function (text, cls) { if (status) { status.textContent = text; status.className = "live-status " + cls; } };
    const source = new EventSource(panel.dataset.liveUrl);
    let down = false;  // the server said the service is unreachable: keep saying so
    source.addEventListener("live", function () { down = false; say("Live: updates appear by themselves", "live"); });
    source.addEventListener("results", function (event) {
      const holder = document.createElement("div");
      holder.innerHTML = event.data;
      holder.querySelectorAll("[data-swap-into]").forEach(function (part) {
        const target = document.getElementById(part.dataset.swapInto);
        if (!target) { return; }
        target.innerHTML = part.innerHTML;
        if (window.htmx) { htmx.process(target); }
        drawCharts(target);
        applyScale(target.querySelector("[data-scale-root]"));
      });
      panel.dataset.snapshot = event.lastEventId;
      down = false;
      say("Live: updated " + new Date().toLocaleTimeString(), "live");
    });
    source.addEventListener("service", function (event) { down = true; say(event.data, "down"); });
    // EventSource reconnects by itself (the server asks for 2 s); say so meanwhile.
    source.onerror = function () { if (!down) { say("Connection lost: reconnecting…", "down"); } };
  }

  // ---- dialogs, confirmations, copy --------------------------------------------------------------
  document.addEventListener("click", function (event) {
    const opener = event.target.closest("[data-open-dialog]");
    if (opener) {
      const dialog = document.getElementById(opener.dataset.openDialog);
      if (dialog && dialog.showModal) { dialog.showModal(); const first = dialog.querySelector("textarea, select, input:not([type=hidden])"); if (first) { first.focus(); } }
    }
    const closer = event.target.closest("[data-close-dialog]");
    if (closer) { closer.closest("dialog").close(); }
    const copy = event.target.closest("[data-copy]");
    if (copy) {
      const input = document.getElementById(copy.dataset.copy);
      input.select();
      if (navigator.clipboard) { navigator.clipboard.writeText(input.value); }
      copy.textContent = "Copied";
    }
    const useTotal = event.target.closest("[data-use-total]");
    if (useTotal) {
      const target = document.querySelector('[name="stopping_rules.target_sample_size"]');
      if (target) { target.value = useTotal.dataset.useTotal; target.dispatchEvent(new Event("input", { bubbles: true })); target.focus(); }
    }
  });
  document.addEventListener("submit", function (event) {
    const form = event.target.closest("[data-confirm]");
    if (form && !window.confirm(form.dataset.confirm)) { event.preventDefault(); }
  });

  // ---- the step-by-step form ---------------------------------------------------------------------
  function setError(field, message) {
    const id = field.id + "-error";
    const slot = document.getElementById(id);
    if (slot) { slot.textContent = message; slot.hidden = !message; }
    if (message) { field.setAttribute("aria-invalid", "true"); } else { field.removeAttribute("aria-invalid"); }
  }

  function checkJson(field) {
    const text = field.value.trim();
    if (!text) { setError(field, ""); return; }
    try {
      const value = JSON.parse(text);
      setError(field, value && typeof value === "object" && !Array.isArray(value) ? "" : "must be a JSON object, e.g. {\"model\": \"gpt-4o\"}");
    } catch (error) {
      setError(field, "is not valid JSON: " + error.message);
    }
  }

  function updateWeights(form) {
    const out = form.querySelector("[data-weights-sum]");
    if (!out) { return; }
    let total = 0;
    form.querySelectorAll("[data-weight]").forEach(function (el) { total += parseFloat(el.value) || 0; });
    const ok = Math.abs(total - 1) < 1e-9;
    out.textContent = ok ? "Weights sum to 100 %" : "Weights sum to " + (total * 100).toFixed(1).replace(/\.0$/, "") + " %: they must sum to 100 %";
    out.className = "weights-sum " + (ok ? "good" : "bad");
  }

  function wizard(form) {
    form.classList.add("js");
    const steps = Array.from(form.querySelectorAll("[data-step]"));
    const links = Array.from(document.querySelectorAll("[data-goto-step]"));
    const back = form.querySelector("[data-step-back]");
    const next = form.querySelector("[data-step-next]");
    let current = 0;
    function show(index, focus) {
      current = Math.max(0, Math.min(steps.length - 1, index));
      steps.forEach(function (s, i) { s.classList.toggle("current", i === current); });
      links.forEach(function (l, i) { if (i === current) { l.setAttribute("aria-current", "step"); } else { l.removeAttribute("aria-current"); } });
      back.hidden = current === 0;
      next.hidden = current === steps.length - 1;
      if (steps[current].dataset.step === "review" && window.htmx) { htmx.trigger("#review", "wizard:review"); }
      if (focus) { const legend = steps[current].querySelector("input:not([type=hidden]), textarea, select, button"); if (legend) { legend.focus(); } }
    }
    links.forEach(function (l) { l.addEventListener("click", function () { show(steps.findIndex(function (s) { return s.dataset.step === l.dataset.gotoStep; }), true); }); });
    back.addEventListener("click", function () { show(current - 1, true); });
    next.addEventListener("click", function () { show(current + 1, true); });
    // Mark steps holding errors from the server.
    steps.forEach(function (s, i) { if (s.querySelector('[aria-invalid="true"], .field-error:not([hidden])') && links[i]) { links[i].classList.add("has-error"); } });
    show(Math.max(0, steps.findIndex(function (s) { return s.dataset.step === form.dataset.startStep; })), false);
    const firstError = form.querySelector('[aria-invalid="true"]');
    if (firstError) { firstError.focus(); }

    form.addEventListener("input", function (event) {
      if (event.target.matches("[data-json]")) { checkJson(event.target); }
      if (event.target.matches("[data-weight]")) { updateWeights(form); }
    });
    updateWeights(form);

    const template = document.getElementById("variant-template");
    const list = form.querySelector("[data-variants]");
    form.querySelector("[data-add-variant]").addEventListener("click", function () {
      const index = list.querySelectorAll("[data-variant]").length;
      if (index >= 8) { return; }
      const html = template.innerHTML.replace(/__i__/g, String(index)).replace(/__n__/g, String(index + 1));
      list.insertAdjacentHTML("beforeend", html);
      updateWeights(form);
      list.lastElementChild.querySelector("input").focus();
    });
    list.addEventListener("click", function (event) {
      if (event.target.closest("[data-remove-variant]")) {
        const card = event.target.closest("[data-variant]");
        // Only the last variant can go: names keep their indexes.
        if (card === list.lastElementChild) { card.remove(); updateWeights(form); }
        else { event.target.textContent = "Remove the last variant first"; }
      }
    });
  }

  // A clean review means the errors the last save found are fixed: stop saying otherwise.
  document.addEventListener("htmx:afterSwap", function (event) {
    if (event.target.id === "review" && !event.target.querySelector(".alert-error")) {
      const banner = document.getElementById("form-errors");
      if (banner) { banner.hidden = true; }
    }
  });

  document.addEventListener("DOMContentLoaded", function () {
    drawCharts(document);
    document.querySelectorAll("[data-scale-root]").forEach(applyScale);
    const form = document.querySelector("[data-wizard]");
    if (form) { wizard(form); }
    startLive();
  });
})();
