"""The command line: ``main`` parses argv and calls the handler the subcommand registered; one
module per family of subcommands (``respond``: files in and out; ``live``: microphone, speaker and
devices; ``serve``; ``evaluate``; ``models``) and ``common``, what they share; ``console`` is the
plain console view of `respond` and `transcribe`. The only place that prints."""
