"""Text to scan for credentials: the diffs the secrets benchmark masks, and random files with
secrets of every kind detect-secrets and ownit know planted in code-like lines (generated from a
seed, never real), next to the near misses its filters and ownit's gates decide on.

``tests/test_secret_scan.py`` compares the fast scan to detect-secrets' own on these;
``benchmarks/bench_secrets.py`` times masking on them.
"""

from __future__ import annotations

import base64
import json
import random
import string
from collections.abc import Callable

ALNUM = string.ascii_letters + string.digits
HEX = "0123456789abcdef"
B64 = ALNUM + "+/"
URLSAFE = ALNUM + "-_"


def bench_diff(files: int = 1000) -> str:
    """The benchmark's masking diff: ``files`` files of 10 context and 50 added lines, no
    secrets (60 lines a file)."""
    lines = []
    for f in range(files):
        lines.append(f"--- a/pkg/m{f}.py\n+++ b/pkg/m{f}.py\n@@ -1,10 +1,60 @@\n")
        lines += [f" ctx_{f}_{k} = compute({k})\n" for k in range(10)]
        lines += [f"+value_{f}_{k} = compute({k}, 'text {f * k}')\n" for k in range(50)]
    return "".join(lines)


def _r(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _jwt(rng: random.Random) -> str:
    head = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').decode().rstrip("=")
    body = json.dumps({"sub": _r(rng, string.digits, 8), "name": _r(rng, ALNUM, 5)})
    claims = base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")
    return f"{head}.{claims}.{base64.urlsafe_b64encode(rng.randbytes(32)).decode().rstrip('=')}"


# Secret values by the kind of detector that should see them.
VALUES: dict[str, Callable[[random.Random], str]] = {
    "aws-id": lambda r: (
        r.choice(["AKIA", "ASIA", "ABIA", "ACCA", "A3TX"])
        + _r(r, string.ascii_uppercase + "234567", 16)
    ),
    "aws-secret": lambda r: _r(r, B64, 40),
    "azure": lambda r: "AccountKey=" + _r(r, B64, 86) + "==",
    "artifactory": lambda r: r.choice(["AKC", "AP6"]) + _r(r, ALNUM, r.randint(10, 70)),
    "cloudant-hex": lambda r: _r(r, HEX, 64),
    "cloudant-url": lambda r: f"https://acct:{_r(r, string.ascii_lowercase, 24)}@acct.cloudant.com",
    "discord": lambda r: (
        r.choice("MNO") + _r(r, URLSAFE, 23) + "." + _r(r, URLSAFE, 6) + "." + _r(r, URLSAFE, 27)
    ),
    "github": lambda r: r.choice(["ghp_", "gho_", "ghu_", "ghs_", "ghr_"]) + _r(r, ALNUM, 36),
    "github-pat": lambda r: "github_pat_" + _r(r, ALNUM + "_", 82),
    "gitlab": lambda r: r.choice(
        [
            "glpat-" + _r(r, URLSAFE, 20),
            "GR1348941" + _r(r, URLSAFE, 20),
            "glcbt-" + _r(r, URLSAFE, 24),
            "glimt-" + _r(r, URLSAFE, 25),
            "glptt-" + _r(r, URLSAFE, 40),
            "glagent-" + _r(r, URLSAFE, 50),
            "gloas-" + _r(r, URLSAFE, 64),
        ]
    ),
    "ibm-iam": lambda r: _r(r, URLSAFE, 44),
    "ibm-cos": lambda r: _r(r, HEX, 48),
    "jwt": _jwt,
    "mailchimp": lambda r: _r(r, HEX + "xyz", 32) + f"-us{r.randint(1, 20)}",
    "npm": lambda r: "//registry.npmjs.org/:_authToken=npm_" + _r(r, ALNUM, 36),
    "openai-legacy": lambda r: "sk-" + _r(r, ALNUM, 20) + "T3BlbkFJ" + _r(r, ALNUM, 20),
    "openai": lambda r: r.choice(["sk-proj-", "sk-", "sk-svcacct-"]) + _r(r, URLSAFE, 48),
    "anthropic": lambda r: "sk-ant-api03-" + _r(r, URLSAFE, 80),
    "google": lambda r: "AIza" + _r(r, URLSAFE, 35),
    "private-key": lambda r: (
        "-----BEGIN "
        + r.choice(["RSA ", "DSA ", "EC ", "OPENSSH ", "", "PGP "])
        + "PRIVATE KEY-----"
    ),
    "putty": lambda r: "PuTTY-User-Key-File-2: ssh-rsa",
    "pypi": lambda r: (
        r.choice(["pypi-AgEIcHlwaS5vcmc", "pypi-AgENdGVzdC5weXBpLm9yZw"]) + _r(r, URLSAFE, 80)
    ),
    "sendgrid": lambda r: "SG." + _r(r, URLSAFE, 22) + "." + _r(r, URLSAFE, 43),
    "slack": lambda r: (
        f"xox{r.choice('abposr')}-{_r(r, string.digits, 12)}-"
        f"{_r(r, string.digits, 13)}-{_r(r, ALNUM, 24)}"
    ),
    "slack-hook": lambda r: (
        f"https://hooks.slack.com/services/T{_r(r, ALNUM, 8)}/B{_r(r, ALNUM, 8)}/{_r(r, ALNUM, 24)}"
    ),
    "softlayer": lambda r: _r(r, string.ascii_lowercase + string.digits, 64),
    "softlayer-url": lambda r: (
        "https://api.softlayer.com/soap/v3/" + _r(r, string.ascii_lowercase + string.digits, 64)
    ),
    "square": lambda r: "sq0csp-" + _r(r, URLSAFE, 43),
    "stripe": lambda r: r.choice(["sk_live_", "rk_live_"]) + _r(r, ALNUM, 24),
    "telegram": lambda r: _r(r, string.digits, r.randint(8, 10)) + ":" + _r(r, URLSAFE, 35),
    "twilio": lambda r: r.choice(["AC", "SK"]) + _r(r, HEX + "xyz", 32),
    "base64": lambda r: _r(r, B64 + "-_=", r.randint(16, 64)),
    # All different: entropy log2(n), just over detect-secrets' 4.5 at 23 characters.
    "base64-distinct": lambda r: "".join(r.sample(B64, r.randint(21, 25))),
    "hex": lambda r: _r(r, HEX, r.choice([7, 12, 40, 64])),
    "password": lambda r: r.choice(
        [
            _r(r, ALNUM + "!#%@", r.randint(6, 24)),
            "hunter2",
            "${DB_PASSWORD}",
            "{password}",
            "<password>",
            "$password",
            "get_secret()",
            "os.environ['X']",
            "********",
            "ABCDEFGHIJKLMNOP",
            "0123456789",
            "12345678-1234-1234-1234-123456789abc",
            "",
        ]
    ),
}
# Names an assignment gives them: keywords detect-secrets and ownit look for, cloud-specific
# ones, near misses, and ones the filters treat as ids.
NAMES = [
    "password",
    "PASSWORD",
    "db_password",
    "api_key",
    "API_KEY",
    "apikey",
    "secret",
    "client_secret",
    "SECRET_KEY",
    "private_key",
    "auth_key",
    "db_pass",
    "pwd",
    "passwd",
    "contraseña",
    "contrasena",
    "token",
    "ACCESS_TOKEN",
    "access_key",
    "aws_secret_access_key",
    "cloudant_password",
    "ibm_cloud_iam_api_key",
    "cos_hmac_secret_access_key",
    "softlayer_api_key",
    "user_id",
    "id",
    "key",
    "value",
    "name",
    "pAsSwOrD",
    "\u212aey",  # the Kelvin sign matches "k" case-insensitively
    "pa\u017f\u017fword",  # and the long s matches "s"
]
TEMPLATES = [
    '{name} = "{v}"',
    "{name} = '{v}'",
    "{name} = {v}",
    "{name}: {v}",
    '{name}: "{v}"',
    '"{name}": "{v}",',
    "export {NAME}={v}",
    '{name} := "{v}"',
    'char {name}[] = "{v}";',
    'std::string {name}("{v}");',
    '{name}.assign("{v}", 12);',
    'if ("{v}" == {name}) {{',
    '{name} => "{v}"',
    '{name} "{v}";',
    'conn = "postgresql://app:{v}@db.internal/prod"',
    "# {v}",
    "    {v}",
    "'{v}'",
    '"{v}"',
    'x = get_secret("{v}")',
    "{name} = request.headers['{v}']",
    '{name} = "{v}"  # pragma: allowlist secret',
    'headers = {{"Authorization": "Bearer {v}"}}',
    "curl -H 'x-api-key: {v}' https://example.com",
    '<add key="{name}" value="{v}" />',
    "{name}={v}  ",
    '{name} = f"{{{v}}}"',
]
# Lines detect-secrets' filters drop whole (an indirect reference, an allowlist pragma): what
# ownit finds there its own patterns find.
FILTERED = [
    'x = get_secret("{v}")',
    "{name} = request.headers['{v}']",
    'stripe = require("stripe")("{v}");',
    '{name} = "{v}"  # pragma: allowlist secret',
]
NOISE = [
    "def {a}(self, {b}: int) -> bool:",
    "    {a} = self.client.fetch_{b}({b}, timeout=3.0)",
    '        raise ValueError(f"{a}: unexpected {b}")',
    "    # keep the old behaviour for callers that pass None",
    "",
    "}}",
    "import os",
    '    log.debug("%s retry %d of %d", {a}, attempt, 3)',
    "    return {{'{a}': {b}, \"key\": 1}}",
    "# pragma: allowlist nextline secret",
    "for {a} in range(10):",
    "{a}: {b}",
    "    url = f'https://api.example.com/v1/{a}'",
    '    assert {a}.status == 200, "{b}"',
    "x[1:] = y[12345678:]",
    "éàü = 'ñandú'",
]
EXTENSIONS = [
    ".py",
    ".go",
    ".yaml",
    ".yml",
    ".js",
    ".java",
    ".c",
    ".cpp",
    ".m",
    ".cs",
    ".toml",
    ".ini",
    ".properties",
    ".tf",
    ".swift",
    ".cls",
    ".conf",
    ".txt",
    ".md",
    ".sh",
    ".lock",
    "",
]


def _word(rng: random.Random) -> str:
    return rng.choice(["charge", "refund", "token", "account", "client", "retry", "key_id"])


def random_line(rng: random.Random) -> str:
    """One line: mostly a secret of some kind in some setting, sometimes plain code."""
    if rng.random() < 0.3:
        a, b = _word(rng), _word(rng)
        return rng.choice(NOISE).format(a=a, b=b)
    value = VALUES[rng.choice(list(VALUES))](rng)
    name = rng.choice(NAMES)
    line = rng.choice(TEMPLATES).format(name=name, NAME=name.upper(), v=value)
    if rng.random() < 0.1:
        line = line.swapcase()
    if rng.random() < 0.1:
        line += rng.choice([" ", "\t", "  "])
    return rng.choice(["", "  ", "    ", "\t"]) + line


def random_files(seed: int, files: int = 20, lines: int = 60) -> list[tuple[str, list[str]]]:
    """(path, lines) of ``files`` random files."""
    rng = random.Random(seed)
    out = []
    for f in range(files):
        name = rng.choice(["settings", "config", "deploy", "app", "secrets", "swagger-ui"])
        ext = rng.choice(EXTENSIONS)
        path = rng.choice(["", "src/", "config/", "deploy/"]) + f"{name}_{f}{ext}"
        if rng.random() < 0.05:
            path = rng.choice(["package-lock.json", "poetry.lock", "yarn.lock"])
        out.append((path, [random_line(rng) for _ in range(rng.randint(1, lines))]))
    return out


def filtered_files(seed: int) -> list[tuple[str, list[str]]]:
    """(path, lines): each kind of value in each line detect-secrets filters out."""
    rng = random.Random(seed)
    lines = [
        template.format(name=rng.choice(NAMES), v=make(rng))
        for make in VALUES.values()
        for template in FILTERED
        for _ in range(4)  # kinds with variants (GitLab's seven) get each
    ]
    return [(f"filtered{ext}", lines) for ext in (".py", ".js", ".yaml", ".go", "")]
