"""Setting booking-cron up on a Prefect server: the work pool, the deployments of
deployments/prefect.yaml, the blocks, the automations of deployments/automations.yaml
(`booking-cron deploy`), and serving the tick without a work pool (`booking-cron serve`)."""
