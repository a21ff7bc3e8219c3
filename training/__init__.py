"""Model training (SageMaker script mode), inference functions and the evaluation report."""
