"""The command line: ``main`` parses argv and dispatches; ``commands`` runs each subcommand;
``console`` is the plain console view of `respond` and `transcribe`. The only place that prints."""
