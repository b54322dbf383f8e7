"""Variables cleared for every test and benchmark, so no real provider, key or ledger on the
machine is ever chosen or contacted. Stdlib only: the benchmarks import it too."""

VENDOR_ENV = (
    "OPENAI_API_KEY",
    "OPENAI_API_BASE",
    "OPENAI_BASE_URL",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_API_BASE",
    "ANTHROPIC_BASE_URL",
    "GEMINI_API_KEY",
    "GEMINI_API_BASE",
    "GOOGLE_API_KEY",
    # Where a Vertex AI call goes decides its price (a regional endpoint costs 10% more).
    "VERTEXAI_LOCATION",
    "VERTEX_LOCATION",
    "MISTRAL_API_KEY",
    "OLLAMA_API_BASE",
    "AZURE_API_KEY",
    "AZURE_API_BASE",
    "OWNIT_LEDGER_URL",
    "OWNIT_TEAM",
    "TIKTOKEN_CACHE_DIR",
    # The CI ownit may itself be tested in: its pull request is not the test's.
    "GITHUB_ACTIONS",
    "GITHUB_EVENT_NAME",
    "GITHUB_EVENT_PATH",
    "GITHUB_STEP_SUMMARY",
    "GITHUB_REPOSITORY",
    "GITHUB_API_URL",
    "GITHUB_TOKEN",
    "GH_TOKEN",
    "GITLAB_CI",
    "GITLAB_TOKEN",
    "CI_JOB_TOKEN",
    "CI_MERGE_REQUEST_IID",
    "CI_API_V4_URL",
)
