import dagster as dg

from resources.settings import Settings


def build_defs(settings: Settings) -> dg.Definitions:
    return dg.Definitions()
