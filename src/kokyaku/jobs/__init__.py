"""Background jobs: a persistent queue on the application database, the worker and periodic schedules."""
