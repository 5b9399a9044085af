"""The bookings database: connections and pools (`database`), the tick's and backfill's
statements (`store`, `shard_sql`), and `db upgrade` over the migrations (`schema`)."""
