"""Recovery: the backups put back. `restore_postgres` (one database from a chosen night),
`restore_object_store` (the mirrored buckets from a chosen night) and `disaster_recovery` (the
cluster state from the etcd snapshot, then the buckets and every database). See
docs/backups.md, "Recovery". Registered by `platform_assets.backups.build_defs`.

Each job writes over something, so each refuses to run without an explicit `confirm` in its run
config that names what it will write.
"""
