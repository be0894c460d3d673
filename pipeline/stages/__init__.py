"""One small builder per stage; each returns its step(s). `pipeline.build` wires them."""
