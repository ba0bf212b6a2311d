"""The exceptions edgerun raises.  All are ValueErrors, so callers that already
handle bad values keep working; catch EdgerunError for everything of ours."""


class EdgerunError(ValueError):
    """Base class of every error edgerun raises on purpose."""


class FormatError(EdgerunError):
    """A .edgerun file is malformed, truncated, corrupted or of an unknown version."""


class ShapeError(EdgerunError):
    """An input has the wrong shape or dtype; the message names the expected one."""


class UnsupportedOpError(EdgerunError):
    """An imported model uses an operator (or attribute) edgerun cannot run."""


class NonFiniteError(EdgerunError):
    """A float input that must be quantized contains NaN or Inf."""


class OptionError(EdgerunError):
    """A compression option is out of range or names an unknown layer."""
