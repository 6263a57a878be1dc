"""Multi-stage recipes built from the engine, methods and teachers."""
