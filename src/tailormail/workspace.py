"""Creating a workspace folder: config, preset files and the database."""

from __future__ import annotations

from pathlib import Path

from tailormail.config import CONFIG_FILE, SECRET_FILE, WORKSPACE_FOLDERS, new_secret
from tailormail.errors import ConfigError

DEFAULT_CONFIG = """\
# tailormail workspace settings. Every key is optional; these are the defaults.
[workspace]
name = "{name}"
timezone = "UTC"          # the workspace's own timezone (schedules, reports)

# [database]
# url = "postgresql://user@host/db"   # default: SQLite file tailormail.db here
#                                     # (TAILORMAIL_DATABASE_URL overrides)

[events]
# The event names presets use. For a Segment e-commerce source write:
#   product_view = "Product Viewed"
#   add_to_cart = "Product Added"
#   checkout_started = "Checkout Started"
#   purchase = "Order Completed"
product_view = "product_view"
add_to_cart = "add_to_cart"
checkout_started = "checkout_started"
purchase = "purchase"

[ingest]
max_message_bytes = 32768   # Segment's per-message limit
max_batch_bytes = 512000    # Segment's per-batch limit

[segments]
# Thresholds of `tailormail segments doctor`.
max_active = 15        # warn above this many active segments (keep 10-15 key ones)
tiny_below = 100       # flag segments with fewer members
stale_days = 30        # flag segments nobody entered or left for this long
overlap_above = 0.9    # flag pairs sharing more than this share of the smaller one

# [sync]                     # scheduled pulls and outbound sync (see README, "Sync")
# allow_private = false      # outbound HTTP refuses private/loopback addresses unless true
# alert_after_failures = 3   # a source failing this often in a row raises an alert
# alert_webhook = "https://hooks.example.com/tailormail"
# Sources and destinations: [[sync.sources]] / [[sync.destinations]] here, or sync/*.yaml.
# [lint]
# traits = ["loyaltyTier"]    # profile traits templates may use besides Segment's and those seen

# [recommend]
# lookback_days = 365         # events older than this do not train recommendations
# exclude_purchased_days = 90 # never recommend what the person bought this recently
# max_age_hours = 24          # then the next model trains in the background (the old one serves)
# inline_training_max_events = 200000  # above: the first model trains in the background too

[deliver]
transport = "maildir"     # "maildir": files in outbox/ here, to open what was sent; "smtp": a relay
maildir = "outbox"
base_url = "http://127.0.0.1:8000"   # public URL of `tailormail serve`, for unsubscribe links
# domain = "example.com"  # unsubscribe mailto and DKIM d=; default: each message's From domain
# sender = "bounces@example.com"     # envelope sender; default: each message's From address
# host = "smtp.example.com"
# port = 587
# security = "starttls"   # "starttls", "tls" (implicit, port 465) or "none"
# username = "apikey"
# password_env = "TAILORMAIL_SMTP_PASSWORD"   # the password is read from this variable
# connections = 16
# dkim_key_file = "dkim.pem"
# dkim_selector = "mail"
rate_per_second = 0       # overall messages per second; 0 = no limit
domain_rate_per_second = 0   # per recipient domain; 0 = no limit
max_attempts = 8          # temporary failures (4xx, timeouts) retry with backoff this often
retry_base_seconds = 60
lease_seconds = 120       # a killed worker's messages are taken over after this
[journeys]
# Rules every journey send and campaign obeys (transactional mail skips the first two).
frequency_cap = 3         # at most this many marketing emails per person ...
frequency_days = 7        # ... in this many days (counted from the outbox)
quiet_hours = "21:00-08:00"   # in each person's timezone; sends wait until they end ("off": none)
# webhook_secret_env = "TAILORMAIL_WEBHOOK_SECRET"   # HMAC key of webhook steps (default: the workspace secret)
# webhook_allow_private = false   # webhook steps refuse private/loopback addresses unless true
# webhook_allowed_networks = ["10.1.0.0/16"]

[predict]
purchase_days = 30          # horizon of purchase_30d
churn_days = 90             # horizon of churn_90d
high_value_days = 90        # horizon of high_value_90d
high_value_share = 0.2      # high value = the top 20 % of spenders in the horizon
retrain_every_days = 7      # the worker retrains this often
max_auc_drop = 0.02         # a retrained model this much worse (ROC AUC) is not promoted
"""

GITIGNORE = f"""\
# the database and the signing secret stay on this machine
tailormail.db*
{SECRET_FILE}
outbox/
reports/
previews/
"""


def write_presets(root: Path) -> None:
    """Write each domain's preset files (segments, templates, journeys) into ``root``."""
    # Each domain adds one call here as it ships presets.
    from tailormail.content.presets import write_content_presets
    from tailormail.predict.presets import write_predict_presets
    from tailormail.segments.presets import write_segment_presets

    write_segment_presets(root)
    write_content_presets(root)
    from tailormail.journeys.presets import write_journey_presets

    write_journey_presets(root)
    write_predict_presets(root)


def init_workspace(root: Path, *, force: bool = False) -> list[Path]:
    """Create a workspace in ``root``; return the files and folders created."""
    root = root.resolve()
    config = root / CONFIG_FILE
    if config.exists() and not force:
        raise ConfigError(f"{config} already exists", hint="use --force to rewrite the presets")
    root.mkdir(parents=True, exist_ok=True)
    created: list[Path] = []
    for folder in WORKSPACE_FOLDERS:
        path = root / folder
        if not path.exists():
            path.mkdir()
            created.append(path)
    if not config.exists():
        config.write_text(DEFAULT_CONFIG.format(name=root.name), encoding="utf-8")
        created.append(config)
    secret = root / SECRET_FILE
    if not secret.exists():
        secret.write_text(new_secret() + "\n", encoding="utf-8")
        secret.chmod(0o600)
        created.append(secret)
    ignore = root / ".gitignore"
    if not ignore.exists():
        ignore.write_text(GITIGNORE, encoding="utf-8")
        created.append(ignore)
    write_presets(root)
    return created
