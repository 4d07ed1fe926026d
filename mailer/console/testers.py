"""The saved test addresses: colleagues' or seed mailboxes a test send can go to, beside the
signed-in person's own. Publishers and admins keep the list; anyone may send tests to it."""

from __future__ import annotations

from flask import redirect, request
from flask.typing import ResponseReturnValue

from mailer.console.access import me, needs, page, record
from mailer.console.service import console
from mailer.core.addresses import MAX_LENGTH, AddressBook, InvalidAddress
from mailer.store.approvals import MAX_TEST_ADDRESSES, TooManyAddresses
from mailer.store.staff import Role


def _page(status: int = 200, problem: str = "") -> ResponseReturnValue:
    return page(
        "test_addresses.html",
        status,
        addresses=console().newsletter.store.test_addresses.all(),
        limit=MAX_TEST_ADDRESSES,
        problem=problem,
    )


@needs(Role.PUBLISHER, "/test-addresses")
def test_addresses() -> ResponseReturnValue:
    return _page()


@needs(Role.PUBLISHER, "/test-addresses", ("POST",))
def add_test_address() -> ResponseReturnValue:
    typed = request.form.get("email", "")
    if len(typed) > MAX_LENGTH:
        return _page(400, f"An address has at most {MAX_LENGTH} characters.")
    try:
        address = AddressBook().normalise(typed)
    except InvalidAddress as error:
        return _page(400, f"Not saved: {error}.")
    try:
        added = console().newsletter.store.test_addresses.add(
            address, me().email, console().clock()
        )
    except TooManyAddresses:
        return _page(409, f"Not saved: the list keeps {MAX_TEST_ADDRESSES} addresses at most.")
    if added:
        record("saved a test address", address)
    return redirect(f"{console().path}/test-addresses")


@needs(Role.PUBLISHER, "/test-addresses/remove", ("POST",))
def remove_test_address() -> ResponseReturnValue:
    address = request.form.get("email", "")[:MAX_LENGTH]
    if console().newsletter.store.test_addresses.remove(address):
        record("removed a test address", address)
    return redirect(f"{console().path}/test-addresses")
