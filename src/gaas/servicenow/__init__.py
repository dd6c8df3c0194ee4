"""ServiceNow compatibility: the Table API under /api/now (a translation over the modules' service
functions) and the import of ServiceNow exports (`gaas import servicenow`)."""
