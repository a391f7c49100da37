"""Audio sources and sinks: the test seam between the pipeline and the outside world."""
