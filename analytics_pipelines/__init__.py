"""TicketToken analytics pipelines."""
