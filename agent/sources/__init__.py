"""Where a diff comes from: a git checkout, a patch file, or standard input."""

from agent.sources.base import DiffSource
from agent.sources.files import from_file, from_stdin
from agent.sources.git import from_git, repo_metadata

__all__ = ["DiffSource", "from_file", "from_git", "from_stdin", "repo_metadata"]
