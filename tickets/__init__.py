"""GridWatch tickets: the incident store, lifecycle and SLA rules, complaint linking,
outbox relay, REST + Open311 API and the watch-floor console.

Entry points: ``tickets.service.TicketService`` (the stream ticketing job),
``tickets.outbox.OutboxRelay`` (gw.tickets / InfluxDB), ``tickets.api.create_app``
(``gridwatch tickets serve``) and ``tickets.bench.run_bench``. See ``tickets/README.md``.
"""
