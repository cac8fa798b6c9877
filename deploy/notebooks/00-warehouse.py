# The warehouse, ready in every notebook: `warehouse` (a DB-API connection) and `query(sql)`
# (a pandas DataFrame). Where Trino is comes from the pod's environment (the notebooks
# release). One lab shared by the developers: Trino sees its queries as TRINO_USER.
import os

import trino

warehouse = trino.dbapi.connect(
    host=os.environ["TRINO_HOST"],
    port=int(os.environ["TRINO_PORT"]),
    user=os.environ["TRINO_USER"],
    catalog=os.environ["TRINO_CATALOG"],
    schema=os.environ["TRINO_SCHEMA"],
)


def query(sql: str):
    import pandas as pd  # in the image; imported on use so the connection needs only trino

    cursor = warehouse.cursor()
    cursor.execute(sql)
    return pd.DataFrame(cursor.fetchall(), columns=[c[0] for c in cursor.description])
