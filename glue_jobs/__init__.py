"""PySpark jobs for AWS Glue 5.0 (Spark 3.5); each runs locally with local[*] too."""
