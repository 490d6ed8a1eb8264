"""A reactor whose names resolve as a test says (like /etc/hosts), for tests of the outbound
policy's connect-time check: a public-looking name that resolves to a local address."""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.interfaces import IHostnameResolver, IReactorPluggableNameResolver
from zope.interface import implementer


@implementer(IHostnameResolver)
class StaticNames:
    """Resolves the names it is given, like /etc/hosts would."""

    def __init__(self, names: dict[str, str]) -> None:
        self.names = names

    def resolveHostName(  # noqa: N802
        self, receiver: Any, hostName: str, portNumber: int = 0, *args: Any, **kw: Any
    ) -> Any:
        receiver.resolutionBegan(None)
        address = self.names.get(hostName, hostName if hostName[:1].isdigit() else None)
        if address is not None:
            receiver.addressResolved(IPv4Address("TCP", address, portNumber))
        receiver.resolutionComplete()
        return None


@implementer(IReactorPluggableNameResolver)
class NamedReactor:
    """The global reactor with ``StaticNames`` as its name resolver."""

    def __init__(self, names: dict[str, str]) -> None:
        self.nameResolver = StaticNames(names)

    def installNameResolver(self, resolver: Any) -> Any:  # noqa: N802
        raise NotImplementedError

    def __getattr__(self, name: str) -> Any:
        return getattr(reactor, name)
