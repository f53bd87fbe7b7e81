"""Open311 GeoReport v2 over the complaint intake, in JSON and XML.

Under ``/open311/v2``, each route answers as ``….json`` or ``….xml``:
``discovery``, ``services``, ``services/{service_code}`` (service definitions),
``requests`` (GET: read, at most 1000, newest first, last 90 days by default; POST: file,
with ``api_key``), ``requests/{service_request_id}``. Service codes are the ticket
categories. Errors are the specification's list of ``{code, description}``.

| module | role |
|---|---|
| ``wire.py`` | pydantic models of every GeoReport document; JSON and XML rendering |
| ``catalogue.py`` | the services and their attributes (data); attribute checking |
| ``geocode.py`` | addresses placed on the grid map with the registry (pure) |
| ``requests.py`` | filing a request (complaint + Open311 row), finding requests |
| ``routes.py`` | the FastAPI routes for both formats |
"""

from tickets.open311.routes import build_router
from tickets.open311.wire import error, format_of

__all__ = ["build_router", "error", "format_of"]
