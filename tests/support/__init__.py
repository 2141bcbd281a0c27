"""Test helpers, imported as `tests.support.<module>` (fixtures stay in the conftest.py files):

- `ports`: a free TCP port for a server a test starts;
- `waiting`: `wait_until`, the one poll-until-a-deadline, for anything a test waits on;
- `servers`: start a bot server process, wait until all its workers are ready, stop it (Ctrl-C);
- `browser`: headless chromium for the browser tests and the customer website they open;
- `bots`: the bots tests share (the test app's admin token and server, the served demo bot's client);
- `postgres`: a throwaway PostgreSQL server, and the engine parameters of store fixtures.
"""
