#!/usr/bin/env bash
# cfn-lint over every template in cdk.out/ (run `make synth` first). One rule skipped, for a reason:
#   W3005  CDK makes each function/model/state machine DependsOn its role so the role's *policy* exists
#          before first use; the role's GetAtt already implies the role itself, which is all cfn-lint sees.
set -euo pipefail
cd "$(dirname "$0")/.."
shopt -s nullglob
templates=(cdk.out/*.template.json)
if [ ${#templates[@]} -eq 0 ]; then
  echo "cfn_lint: no templates in cdk.out/; run 'make synth' first" >&2
  exit 2
fi
exec .venv/bin/cfn-lint --ignore-checks W3005 -- "${templates[@]}"
