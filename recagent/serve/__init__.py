"""`recagent serve`: the HTTP API, chat sessions in a database and the chat page, over the
same parts as the CLI (recagent.wiring). app: routes; engine: the blocking work;
limits: deadlines and backpressure; sessions: the database; runner: uvicorn and the
embedded model's supervisor."""
