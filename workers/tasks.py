"""The functions django-q2 calls. Each takes a conversion id and nothing else."""

from workers import pipeline


def run_conversion(conversion_id: str) -> str:
    return pipeline.run_conversion(conversion_id)
