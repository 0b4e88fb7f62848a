"""View models: protos in, plain frozen values out, ready for the templates (pure)."""
