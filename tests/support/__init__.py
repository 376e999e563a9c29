"""What the tests share that is not a test: AppTest and Playwright helpers, hand-built documents, the
engine's reference, real server processes, the worker processes the reliability tests spawn
(`python -m tests.support.db_worker`, `python -m tests.support.kb_worker`), and `wait_until`."""
