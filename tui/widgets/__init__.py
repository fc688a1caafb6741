"""The app's widgets: chat, step tracker, memory chart, tokenizer audit, training plot, tool log."""
