"""CLI subcommands, one module per capability; each registers on the shared typer app."""
