"""How SQL picks a shard's orgs: an org's shard is a hash of its id (`domain.due.Shard` says which
shard a tick covers; these build the SQL that applies it). Every query that picks a shard's orgs,
and the audit, hash orgs this way."""


def org_shard_sql(org: str, shards: str) -> str:
    """SQL: the 0-based shard of the org id `org` among `shards` (both SQL expressions)."""
    return f"mod(abs(hashtextextended({org}::text, 0)), {shards})"


def in_shard_sql(org: str) -> str:
    """SQL: the org id `org` is in the shard given as the parameters %(shard)s of %(shards)s."""
    return f"(%(shards)s = 1 or {org_shard_sql(org, '%(shards)s')} = %(shard)s)"
