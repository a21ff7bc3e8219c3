"""ReturnGuard's CDK stacks: one per concern, wired by typed props in `stacks.wiring`."""
