"""Run history: the writer that records runs as they happen and the service that reads them."""
