"""Everything that runs inside a trial: data, models, training, metrics and the Parquet sink."""
