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
    "GOOGLE_API_KEY",
    "MISTRAL_API_KEY",
    "OLLAMA_API_BASE",
    "AZURE_API_KEY",
    "AZURE_API_BASE",
    "OWNIT_LEDGER_URL",
    "OWNIT_TEAM",
    "TIKTOKEN_CACHE_DIR",
)
