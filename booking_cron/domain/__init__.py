"""Pure decisions, no I/O: what is due and in what batches (`due`), the ten-minute slots
(`slots`), what a tick's summary counts (`results`), and every decision about a text
(`texts/`: what to send and when, quiet hours, rendering, phone numbers)."""
