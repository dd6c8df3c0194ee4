"""GaaS: IT service management for government agencies, on PostgreSQL."""

__version__ = "0.1.0"
