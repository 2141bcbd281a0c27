"""All settings of a bot: one frozen dataclass per section, loaded from `bot.toml`, overridable on the CLI.

`bot.toml` has one table per section (`[train]`, `[knowledge]`, `[server]`, `[privacy]`, `[transcripts]`, `[review]`,
`[analytics]`, `[database]`); the CLI overrides any field with `--set section.field=value`.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from core.settings import refuse_invalid, setting
from knowledge.settings import KnowledgeSettings
from training.redact import RedactSettings
from training.settings import RetrainSettings, TrainSettings
from training.transcripts.settings import TranscriptSettings


@dataclass(frozen=True)
class ServerSettings:
    """The HTTP server, its security limits and the conversation log."""

    host: str = setting("127.0.0.1", "Address the server listens on.")
    port: int = setting(8080, "Port the server listens on.")
    admin_token: str = setting("", "Bearer token for admin and review endpoints; empty = read SUPPORTBOT_ADMIN_TOKEN.")
    allowed_origins: tuple[str, ...] = setting((), "Website origins allowed to call the chat API (CORS allow-list).")
    max_body_bytes: int = setting(16384, "Largest request body accepted; bigger ones get 413.")
    max_message_chars: int = setting(2000, "Longest chat message accepted, in characters; longer ones get 413.")
    rate_limit: float = setting(2.0, "Sustained requests per second per client (a verified customer, else a conversation whose token matched, else the client address); 0 = no limit.")
    rate_burst: int = setting(20, "Requests a client may send at once before the rate limit applies.")
    handoff_after_failures: int = setting(3, "Hand the conversation to a person after this many fallback answers in a row; 0 = never.")
    handoff_webhook: str = setting("", "URL POSTed (JSON) when a conversation is handed off; empty = none.")
    webhook_timeout: float = setting(5.0, "Seconds the handoff webhook may take; it never delays the chat answer.")
    clarify_choices: int = setting(3, "Most intents offered as quick replies in a clarifying question.")
    clarify_floor: float = setting(0.1, "No intent whose probability is below this is offered in a clarifying question.")
    conversation_basics: bool = setting(True, "Greetings, thanks, goodbyes, yes/no, 'are you a bot?' and frustration are recognised by English patterns (bot/dialogue/basics.py), also around a request ('hi, where is my order'); an intent of the same name answers instead of the built-in reply; false = the model decides them.")
    smalltalk_intents: tuple[str, ...] = setting(
        ("greet", "thanks", "goodbye"), "Intents answered as small talk: never sent to the knowledge base, never a failure."
    )
    fallback_message: str = setting(
        "Sorry, I'm not sure I understood. Could you rephrase, or would you like to talk to a person?",
        "Answer when neither an intent nor the knowledge base is confident.",
    )
    suggest_message: str = setting(
        "I'm not sure I have the exact answer. These articles may help, or would you like to talk to a person?",
        "Fallback answer when the knowledge base has articles worth a look (knowledge.suggest_relevance).",
    )
    clarify_message: str = setting("Did you mean one of these?", "Question asked when the top intents are too close to call.")
    languages: tuple[str, ...] = setting(("en",), "Languages the bot answers in (ISO 639-1 codes; the intent model's: the packaged one is English, a multilingual train.base_model can add more). A message no intent answers confidently that is detected in another language gets other_language_message; empty = no language check.")
    language_confidence: float = setting(0.7, "Detector probability from which a message counts as written in another language (short and misspelt messages rarely reach it).")
    other_language_message: str = setting(
        "Sorry, I can only answer in English. Would you like to talk to a person?",
        "Answer to a message in a language the bot does not answer in (server.languages); a person is offered.",
    )
    handoff_message: str = setting(
        "I'm passing you to a person. A person will reply here soon.", "Answer when a conversation is handed off."
    )
    waiting_message: str = setting(
        "A person will reply here soon.", "Answer to every message of a handed-off conversation until it is released."
    )
    idle_timeout_s: float = setting(20.0, "Seconds a connection may take to send its request line and headers, and may "
                                    "stay idle between requests, before the server closes it (a half-open or slow "
                                    "client holds an open file until then).")
    watch_interval: float = setting(5.0, "Seconds between checks of the model registry's CURRENT pointer; 0 = only /admin/reload.")
    batch_size: int = setting(32, "Most chat messages classified (or questions searched) in one call; messages that "
                              "arrive while a call runs go together in the next.")
    batch_wait_ms: float = setting(0.0, "Milliseconds an idle model waits for more messages to batch with the first "
                                   "(0: none; under load batches form while the previous call runs).")
    model_threads: int = setting(
        1, "Threads each model call may use, in whichever runtime serves it (ONNX Runtime's intra-op threads, or "
        "torch's); intent-model and knowledge-base batches run at once. 0 = the runtime's default (all cores: many "
        "times slower when calls overlap or the machine is busy). Was server.torch_threads, still accepted."
    )
    cache_size: int = setting(10000, "Predictions kept for repeated messages (same text up to white space, and case for "
                              "an uncased model; at most 100 characters) under the serving model version; 0 = no cache.")
    access_log: bool = setting(True, "Log one line per HTTP request (never bodies, tokens or headers).")
    public_url: str = setting("", "URL customers reach this server at (e.g. https://help.shop.example); its origin counts as the "
                              "server's own for the same-origin check. Empty = only loopback addresses (127.0.0.1, localhost) do.")
    trusted_proxies: tuple[str, ...] = setting((), "Addresses or networks (CIDR) of reverse proxies whose X-Forwarded-For is "
                                               "believed, for rate limits and logs; empty = the connecting address is the client.")
    new_conversation_rate: float = setting(0.2, "Sustained new conversations per second per client address; 0 = no limit.")
    new_conversation_burst: int = setting(20, "New conversations a client address may start at once before that limit applies.")
    handoff_rate: float = setting(0.05, "Sustained handoffs to a person per second per client address; 0 = no limit.")
    handoff_burst: int = setting(5, "Handoffs a client address may ask for at once before that limit applies.")
    log_format: str = setting("text", "Log lines as 'text' or as 'json' (one JSON object per line: time, level, logger, "
                              "message, and per request its request id, route, status, latency, conversation id; "
                              "never message text, tokens or personal data).")
    metrics_allow: tuple[str, ...] = setting((), "Addresses or networks (CIDR) that may scrape /metrics without the "
                                             "admin token, e.g. the Prometheus server; empty = the admin token only.")
    workers: int = setting(1, "Server processes sharing the port (`serve --workers N`); each loads its own model and "
                           "index. Above 1: rate limits are counted across them, a conversation's turns still apply "
                           "one at a time, and a worker that dies is restarted. About one per 2 cores.")
    identity_secret: str = setting("", "Secret shared with the host site for verified customer identity: the site passes "
                                   "the widget a customer id and its HMAC-SHA256 with this secret, and a customer's "
                                   "conversations are linked (returns, one rate limit); empty = read "
                                   "SUPPORTBOT_IDENTITY_SECRET, neither = off. Never logged.")

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise ValueError(f"server.port must be 1..65535, not {self.port}")
        checks = {
            "max_body_bytes": self.max_body_bytes >= 256,
            "max_message_chars": self.max_message_chars >= 1,
            "rate_limit": self.rate_limit >= 0,
            "rate_burst": self.rate_burst >= 1,
            "handoff_after_failures": self.handoff_after_failures >= 0,
            "webhook_timeout": self.webhook_timeout > 0,
            "clarify_choices": self.clarify_choices >= 2,
            "clarify_floor": 0 <= self.clarify_floor < 1,
            "language_confidence": 0 < self.language_confidence <= 1,
            "watch_interval": self.watch_interval >= 0,
            "idle_timeout_s": self.idle_timeout_s > 0,
            "batch_size": self.batch_size >= 1,
            "batch_wait_ms": 0 <= self.batch_wait_ms <= 1000,
            "model_threads": self.model_threads >= 0,
            "cache_size": self.cache_size >= 0,
            "handoff_webhook": self.handoff_webhook == "" or self.handoff_webhook.startswith(("http://", "https://")),
            "public_url": self.public_url == "" or _is_origin_url(self.public_url),
            "trusted_proxies": all(_is_network(p) for p in self.trusted_proxies),
            "new_conversation_rate": self.new_conversation_rate >= 0,
            "new_conversation_burst": self.new_conversation_burst >= 1,
            "handoff_rate": self.handoff_rate >= 0,
            "handoff_burst": self.handoff_burst >= 1,
            "log_format": self.log_format in ("text", "json"),
            "metrics_allow": all(_is_network(p) for p in self.metrics_allow),
            "workers": 1 <= self.workers <= 64,
        }
        refuse_invalid(self, "server", checks)


@dataclass(frozen=True)
class ReviewSettings:
    """The review workspace: accounts, sessions, what reaches the queue."""

    session_hours: float = setting(12.0, "Hours a review login lasts; after that the reviewer logs in again.")
    audit_rate: float = setting(0.02, "Share of confident answers (template or knowledge, unflagged) sampled into the review queue as audits.")
    login_attempts: int = setting(5, "Failed logins allowed per account within login_window_s before it is locked for the rest of the window.")
    address_attempts: int = setting(20, "Failed logins allowed per client address within login_window_s.")
    login_window_s: float = setting(900.0, "Seconds over which failed logins are counted.")
    page_size: int = setting(50, "Groups of messages shown per queue page.")
    cluster_max: int = setting(5000, "Most unanswered messages clustered at once on the 'could not answer' page (newest first).")
    cluster_min_size: int = setting(3, "Smallest group of unanswered messages shown as a cluster.")
    cluster_distance: float = setting(0.4, "Most cosine distance between any two messages of a cluster on the 'could not answer' page (0.4: similarity 0.6; on BANKING77 a per-run cut chained different requests together, see BENCHMARKS.md).")
    memory: bool = setting(True, "Messages close enough to one a reviewer settled (confirmed, corrected, marked out of scope, picked from a clarifying question) get that answer at once, before the intent model (bot/review/memory.py); needs the knowledge base's embedder.")
    memory_precision: float = setting(0.95, "Share of the memory's answers that must be right; its similarity threshold is fitted to it by leave-one-out over the reviewed messages (below 30 of them, or unreached: near-exact repeats only).")
    intent_similarity: float = setting(0.6, "Cosine similarity of a cluster to an intent's examples above which the verdict is 'an existing intent missed these' (when most of its messages are nearest that intent; else 'mixed').")

    def __post_init__(self) -> None:
        checks = {
            "session_hours": self.session_hours > 0, "audit_rate": 0 <= self.audit_rate <= 1,
            "login_attempts": self.login_attempts >= 1, "address_attempts": self.address_attempts >= 1,
            "login_window_s": self.login_window_s > 0, "page_size": 1 <= self.page_size <= 1000,
            "cluster_max": self.cluster_max >= 2, "cluster_min_size": self.cluster_min_size >= 2,
            "cluster_distance": 0 < self.cluster_distance < 2, "intent_similarity": 0 < self.intent_similarity <= 1,
            "memory_precision": 0 < self.memory_precision <= 1,
        }
        refuse_invalid(self, "review", checks)


@dataclass(frozen=True)
class AnalyticsSettings:
    """How the analytics figures are counted (bot/analytics/figures.py defines each one)."""

    return_window: float = setting(24.0, "Hours after a conversation goes quiet in which the customer coming back to it "
                                   "un-contains it; a conversation counts as settled (and in the containment rate) only "
                                   "once this window has closed.")
    session_gap: float = setting(30.0, "Minutes of silence after which a customer's next message in the same conversation "
                                 "(the widget keeps it across pages and days) is a return, not a reply.")
    days: int = setting(30, "Days the analytics page and the report cover by default.")
    drift_alert: float = setting(0.0, "Jensen–Shannon distance of the last 7 days' intent mix from the serving model's "
                                 "training mix at or above which the server reports drift (/readyz, /metrics, the "
                                 "analytics page) and, when retrain.interval is on, starts a gated retrain early "
                                 "(once per week); 0 = never.")
    drift_check: float = setting(1.0, "Hours between the server's drift checks (when drift_alert is set).")
    drift_min_turns: int = setting(200, "Fewest turns with a recognised intent in the last 7 days before drift is judged.")

    def __post_init__(self) -> None:
        checks = {"return_window": self.return_window > 0,
                  "session_gap": 0 < self.session_gap < self.return_window * 60,  # a return must fit in the window
                  "days": 1 <= self.days <= 3660, "drift_alert": 0 <= self.drift_alert <= 1,
                  "drift_check": self.drift_check > 0, "drift_min_turns": self.drift_min_turns >= 1}
        refuse_invalid(self, "analytics", checks)


DATABASE_URL_ENV = "SUPPORTBOT_DATABASE_URL"


@dataclass(frozen=True)
class DatabaseSettings:
    """Where the bot keeps its state: conversations, reviews, accounts, analytics, examples, knowledge chunks."""

    url: str = setting("", "The bot's database: empty = the SQLite file supportbot.db in state_dir (the default, nothing "
                       "to install); postgresql://user:password@host:port/dbname = a PostgreSQL server, shared by every "
                       "worker and machine of the bot (`run_bot.py db copy --to URL` moves a bot's state there). Empty "
                       f"also reads {DATABASE_URL_ENV}. It holds a password: shown only as set or not, never logged.")

    def __post_init__(self) -> None:
        from core.engine import is_postgres_url

        if self.url and not is_postgres_url(self.url):  # the value is not repeated: it may hold a password
            raise ValueError("database.url must be empty (the SQLite file in state_dir) or a postgresql:// URL")


def _is_origin_url(url: str) -> bool:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _is_network(text: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Settings:
    """Every section; `state_dir` holds what the program generates (database, models, index)."""

    name: str = setting("", "Bot name, used in logs and for the state folder; empty = the bot folder's name.")
    display_name: str = setting("", "The bot's name as customers see it: the widget's title ('<display_name> support') and {bot_name} in answers; empty = the bot name, capitalised.")
    state_dir: str = setting("", "Folder for generated state (database, model versions, index); empty = ~/.local/share/supportbot/<name>.")
    train: TrainSettings = field(default_factory=TrainSettings, metadata={"help": "Intent-model training."})
    retrain: RetrainSettings = field(default_factory=RetrainSettings, metadata={"help": "Periodic gated retraining."})
    knowledge: KnowledgeSettings = field(default_factory=KnowledgeSettings, metadata={"help": "Knowledge base."})
    server: ServerSettings = field(default_factory=ServerSettings, metadata={"help": "HTTP server."})
    privacy: RedactSettings = field(default_factory=RedactSettings, metadata={"help": "PII redaction."})
    transcripts: TranscriptSettings = field(
        default_factory=TranscriptSettings, metadata={"help": "Importing past transcripts as training examples."})
    review: ReviewSettings = field(default_factory=ReviewSettings, metadata={"help": "The review workspace."})
    analytics: AnalyticsSettings = field(default_factory=AnalyticsSettings, metadata={"help": "Analytics figures."})
    database: DatabaseSettings = field(default_factory=DatabaseSettings, metadata={"help": "The bot's database."})

    @property
    def shown_name(self) -> str:
        return self.display_name or self.name.replace("_", " ").replace("-", " ").strip().title()

    @property
    def state_path(self) -> Path:
        if self.state_dir:
            return Path(self.state_dir).expanduser()
        return Path.home() / ".local" / "share" / "supportbot" / (self.name or "bot")

    @property
    def db_path(self) -> Path:
        return self.state_path / "supportbot.db"

    @property
    def database_location(self) -> str:
        """What `bot.database.open_bot_database` opens: database.url (else the environment's), or else the SQLite file `db_path`."""
        return self.database.url or os.environ.get(DATABASE_URL_ENV, "") or str(self.db_path)

    @property
    def on_postgres(self) -> bool:
        from core.engine import is_postgres_url

        return is_postgres_url(self.database_location)

    @property
    def models_path(self) -> Path:
        return self.state_path / "models"

    @property
    def index_path(self) -> Path:
        return self.state_path / "index"


SECTIONS = ("train", "knowledge", "server", "privacy", "transcripts", "review", "analytics", "database")


class SettingError(ValueError):
    """A setting that does not fit; `key` is its dotted name, so the caller can say where it was written."""

    def __init__(self, message: str, key: str):
        super().__init__(message)
        self.key = key


def load_settings(path: Path | None = None, overrides: Iterable[str] = ()) -> Settings:
    """Settings from a TOML file (if given and present) with `section.field=value` overrides applied.

    Every error names where the setting was written: the file and line, or the `--set` override."""
    data: dict[str, Any] = {}
    text = ""
    source = str(path) if path else "defaults"
    if path is not None and Path(path).is_file():
        try:
            text = Path(path).read_text(encoding="utf-8")
            data = tomllib.loads(text)
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"{path}: not valid TOML: {e}") from e
    given: dict[str, str] = {}  # dotted key -> the override that set it
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set {item!r}: expected section.field=value")
        *sections, name = key.strip().split(".")
        target = data
        for s in sections:
            target = target.setdefault(s, {})
        target[name] = _parse_cli_value(value.strip())
        given[key.strip()] = item
    try:
        return _build(Settings, data, source, prefix="")
    except SettingError as e:
        if e.key in given:
            raise ValueError(f"--set {given[e.key]}: {e}") from None
        line = _toml_line(text, e.key)
        raise ValueError(f"{source}:{line}: {e}" if line else f"{source}: {e}") from None


def _toml_line(text: str, dotted: str) -> int | None:
    """The line of bot.toml where `dotted` (section.field) is set, or its [table] starts; None if not found."""
    table, fallback = "", None
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.split("#", 1)[0].strip()
        header = re.fullmatch(r"\[\s*([\w.\-\s\"']+?)\s*\]", stripped)
        if header:
            table = re.sub(r"[\s\"']", "", header.group(1))
            if table == dotted:
                fallback = fallback or number
            continue
        assignment = re.match(r"([\w\-\"'.\s]+?)\s*=", stripped)
        if assignment:
            key = re.sub(r"[\s\"']", "", assignment.group(1))
            full = f"{table}.{key}" if table else key
            if full == dotted:
                return number
            if dotted.startswith(full + "."):  # an inline table or a dotted parent
                fallback = fallback or number
    return fallback


def _parse_cli_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text  # a bare string


RENAMED = {"server.torch_threads": "server.model_threads"}  # old dotted name -> new; the old one still read


def _renamed(data: dict[str, Any], prefix: str) -> dict[str, Any]:
    """`data` with this section's old setting names given their new ones; both at once is an error."""
    for old, new in RENAMED.items():
        section, _, name = old.rpartition(".")
        if prefix == section + "." and name in data:
            if new.rpartition(".")[2] in data:
                raise SettingError(f"{old} is the old name of {new}: set only {new}", old)
            data = {(new.rpartition(".")[2] if k == name else k): v for k, v in data.items()}
    return data


def _build(cls: type, data: dict[str, Any], source: str, prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    data = _renamed(data, prefix)
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise SettingError(f"unknown setting {', '.join(prefix + u for u in unknown)}", prefix + unknown[0])
    kwargs = {}
    for name, value in data.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            if not isinstance(value, dict):
                raise SettingError(f"[{prefix}{name}] must be a table", prefix + name)
            kwargs[name] = _build(hint, value, source, prefix=f"{prefix}{name}.")
        else:
            try:
                kwargs[name] = _coerce(value, hint, f"{prefix}{name}")
            except ValueError as e:
                raise SettingError(str(e), prefix + name) from None
    try:
        return cls(**kwargs)
    except ValueError as e:  # a section's own check: find which of the given fields it names
        named = [n for n in kwargs if re.search(rf"(?<![\w]){re.escape(n)}(?![\w])", str(e))]
        raise SettingError(str(e), (prefix + (named[0] if named else "")).rstrip(".")) from e


def _coerce(value: Any, hint: Any, where: str) -> Any:
    if typing.get_origin(hint) is tuple:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)) or not all(isinstance(v, str) for v in items):
            raise ValueError(f"{where} must be a list of strings, not {value!r}")
        return tuple(items)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is bool and isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        raise ValueError(f"{where} must be {hint.__name__}, not {value!r}")
    return value


def describe(cls: type = Settings, prefix: str = "") -> list[tuple[str, Any, str]]:
    """(dotted name, default, help) for every setting: the CLI's `settings` command and the docs."""
    rows = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            rows += describe(hints[f.name], prefix=f"{prefix}{f.name}.")
        else:
            rows.append((prefix + f.name, f.default, f.metadata.get("help", "")))
    return rows
