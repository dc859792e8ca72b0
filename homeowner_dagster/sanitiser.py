"""One sanitiser for what errors and logs say: no secret survives into a message people read.

Drivers and HTTP clients quote what they were given: psycopg quotes a password holding an
unencoded `%` ("invalid percent-encoded token: ..."), httpx logs every request URL (a Clay
webhook's path is its secret, DeBounce's bulk call carries a signed link), libraries repeat
connection strings. `sanitise` removes, whatever the text's shape:

- every value of a secret environment variable (names holding PASSWORD, TOKEN, SECRET, ending
  in KEY); for the database, storage and webhook URLs, their password (raw and percent-decoded)
  and a webhook's path, so a line still names the host;
- the password of any `scheme://user:password@host` and any `password=` in a connection string;
- query values that carry keys, signatures, signed links or addresses (`api=`, `token=`,
  `url=`, `email=`, ...), a Clay webhook's path, Slack tokens and Bearer credentials.

It is applied where text leaves the process's control: every log record (a record factory
installed on import), exception messages the project raises from a driver's error
(`scrub_exception`, `db.connect`), the failure alert, `agent_errors` and each Slack message.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from urllib.parse import unquote, urlsplit

MASK = "***"
# Environment variables whose values are secrets (and the URLs that hold one): COLE_*_PASSWORD,
# *_TOTP_SECRET, BISON_TOKEN_*, SLACK_BOT_TOKEN, DEBOUNCE_API_KEY, CLAY_WEBHOOK_URL_2, ...
_SECRET_NAME = re.compile(
    r"PASSWORD|SECRET|TOKEN|_KEY(_[0-9]+)?$|(WEBHOOK|DATABASE|STORAGE)_URL(_[0-9]+)?$"
)
_SHORTEST = 6  # shorter values (a flag, a port) are not searched for: they would mask noise
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # scheme://user:password@host -> scheme://user:***@host (an unencoded @ in it: up to the last)
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s/:@'\"]*):[^\s/'\"]*@"), rf"\1:{MASK}@"),
    # libpq key=value strings and psycopg's quoting of a bad percent escape
    (re.compile(r"(?i)\b(password\s*=\s*)('[^']*'|\"[^\"]*\"|[^\s'\"]+)"), rf"\1{MASK}"),
    (
        re.compile(r"(?i)(invalid percent-encoded token:\s*)(\"[^\"]*\"|'[^']*'|\S+)"),
        rf'\1"{MASK}"',
    ),
    # query values: keys, signatures, signed links (DeBounce's ?url=), homeowners' addresses
    (
        re.compile(
            r"(?i)([?&;](?:api|api_?key|key|token|access_token|sig|signature|secret|password|"
            r"url|email|x-amz-signature|x-amz-credential)=)[^&\s'\"<>]+"
        ),
        rf"\1{MASK}",
    ),
    # a Clay webhook's URL path is its secret
    (re.compile(r"(/v3/sources/webhook/)[^\s/?#'\"<>]+"), rf"\1{MASK}"),
    # Slack tokens, Bearer credentials, header-style keys
    (re.compile(r"\bxox[a-z]-[A-Za-z0-9-]+"), f"xox-{MASK}"),
    (re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]+"), rf"\1{MASK}"),
    (
        re.compile(
            r"(?i)\b((?:authorization|apikey|clay-api-key|x-clay-webhook-auth)['\"]?\s*[:=]\s*['\"]?)"
            r"[^'\",\s}]+"
        ),
        rf"\1{MASK}",
    ),
)


def _url_password(value: str) -> list[str]:
    """A URL's password, raw and percent-decoded ([] when there is none)."""
    if "://" not in value:
        return []
    netloc = value.split("://", 1)[1].split("/", 1)[0].split("?", 1)[0]
    userinfo = netloc.rpartition("@")[0]
    password = userinfo.partition(":")[2]
    return [password, unquote(password)] if password else []


def _webhook_path(value: str) -> list[str]:
    """A webhook URL's last path segment: the part that lets anyone post to it."""
    try:
        path = urlsplit(value).path.rstrip("/")
    except ValueError:
        return []
    last = path.rsplit("/", 1)[-1]
    return [last] if last else []


def secret_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """The values to remove: secret variables' values and the secrets inside URL-valued ones,
    longest first (a value containing another is removed whole)."""
    env = os.environ if environ is None else environ
    found: set[str] = set()
    for name, value in list(env.items()):
        if not value or not _SECRET_NAME.search(name.upper()):
            continue
        value = value.strip()
        if "://" not in value:
            found.add(value)
            continue
        # A URL: its secret parts only, so a log line still names the host it went to.
        found.update(_url_password(value))
        if name.upper().startswith("CLAY_WEBHOOK_URL"):
            found.update(_webhook_path(value))
    return sorted((v for v in found if len(v) >= _SHORTEST), key=len, reverse=True)


def sanitise(text: str, environ: Mapping[str, str] | None = None) -> str:
    """`text` without any secret (see the module's list); anything else unchanged."""
    if not text:
        return text
    for value in secret_values(environ):
        if value in text:
            text = text.replace(value, MASK)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def first_line(text: str, limit: int = 500) -> str:
    """The sanitised first line of a message, for one-line errors (CLI, alerts)."""
    lines = sanitise(text or "").strip().splitlines()
    return lines[0][:limit] if lines else ""


def scrub_exception(exc: BaseException | None) -> BaseException | None:
    """Sanitise an exception's message in place, and its causes': what Dagster records of a
    step's error (its message and those of its cause and context) then holds no secret."""
    seen: set[int] = set()
    current = exc
    stack = [exc]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        args = tuple(sanitise(a) if isinstance(a, str) else a for a in current.args)
        if args != current.args:
            current.args = args
        for attribute in ("description", "message"):
            value = getattr(current, attribute, None)
            if isinstance(value, str) and sanitise(value) != value:
                try:
                    setattr(current, attribute, sanitise(value))
                except AttributeError:
                    pass
        stack += [current.__cause__, current.__context__]
    return exc


def _clean_arg(value: object) -> object:
    """Strings sanitised; an object whose text holds a secret (httpx.URL) becomes its sanitised
    text; numbers and everything else untouched, so `%d` and friends still format."""
    if isinstance(value, str):
        return sanitise(value)
    if isinstance(value, int | float | bool) or value is None:
        return value
    text = str(value)
    cleaned = sanitise(text)
    return cleaned if cleaned != text else value


def clean_record(record: logging.LogRecord) -> logging.LogRecord:
    """A log record with its message, arguments and exception sanitised."""
    if isinstance(record.msg, str):
        record.msg = sanitise(record.msg)
    if isinstance(record.args, tuple):
        record.args = tuple(_clean_arg(a) for a in record.args)
    elif isinstance(record.args, dict):
        record.args = {k: _clean_arg(v) for k, v in record.args.items()}
    if record.exc_info and record.exc_info[1] is not None:
        scrub_exception(record.exc_info[1])
    return record


def install() -> None:
    """Every log record of this process passes `clean_record` when it is made (once)."""
    factory = logging.getLogRecordFactory()
    if getattr(factory, "homeowner_sanitises", False):
        return

    def sanitising_factory(*args: object, **kwargs: object) -> logging.LogRecord:
        return clean_record(factory(*args, **kwargs))

    sanitising_factory.homeowner_sanitises = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(sanitising_factory)


install()
