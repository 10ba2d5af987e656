"""Configuration of the sign-in pages, hung off :class:`mcpward.config.Settings` as
``pages``. The models live in :mod:`mcpward.config` (which must not import the server
package); this module keeps the pages' own import path."""

from mcpward.config import LoginLimits, PagesSettings, UpstreamProvider

__all__ = ["LoginLimits", "PagesSettings", "UpstreamProvider"]
