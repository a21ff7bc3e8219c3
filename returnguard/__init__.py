"""ReturnGuard domain package: features, policy, explanations and schemas shared by every runtime."""

__version__ = "0.1.0"
