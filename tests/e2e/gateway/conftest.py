"""The gateway tests run LiteLLM offline: its model cost map from the installed package, never
downloaded (set before LiteLLM is first imported)."""

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
