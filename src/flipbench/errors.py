"""Errors a user can fix: the CLI prints them as one line and exits with code 2."""


class FlipbenchError(Exception):
    """Bad input or an unusable environment; the message says what to do."""


class BackendFatalError(FlipbenchError):
    """The backend refused in a way that retrying cannot fix (bad key, unknown model…)."""


class RunInterrupted(Exception):
    """The user stopped a run (Ctrl-C); everything completed is journaled and resumable."""

    def __init__(self, run_id: str) -> None:
        super().__init__(
            f"run {run_id} interrupted; continue with: flipbench run --resume {run_id}"
        )
        self.run_id = run_id


class BudgetReached(FlipbenchError):
    """The run spent its --max-cost: it stops cleanly and can be resumed with a larger budget."""

    def __init__(self, spent: float, limit: float) -> None:
        super().__init__(f"budget reached: spent ${spent:.4f} of ${limit:.4f}")
        self.spent, self.limit = spent, limit


class ExactUnavailable(FlipbenchError):
    """The endpoint returns no next-token probabilities, so exact mode cannot run on it."""
