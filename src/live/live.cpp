// Live tracing: filled in by the tracepoint backend.
