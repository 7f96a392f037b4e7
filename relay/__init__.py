"""b24relay: relays Bitrix24 deals from partner portals to an ESB portal, exactly once."""

__version__ = "0.1.0"
