"""What operators run: the command line (`cli`, `demo`, `seed`, `audit`, `doctor`), where the
database and Prefect API come from (`wiring`, `prefect_api`), and setting booking-cron up on a
Prefect server: the work pool, the deployments of deployments/prefect.yaml (`setup`, `shards`,
`schedules`), and serving the tick without a work pool (`serve`)."""
