"""The Textual app behind `qkv chat` (and `qkv` with no arguments): talk a design through, watch the five
steps run, read the report, follow training. `qkv.tui.app.run_app` is the front door."""
