def test_healthz(client):
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r.get_json()["institution"] == "NORTH"


def test_checkout_own_patron(client, seeded, token):
    r = client.post("/api/v1/checkouts", json={"item_barcode": "N0001", "patron": {"institution": "NORTH", "id": "n-100"}},
                    headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 201, r.get_json()
    loan = r.get_json()
    assert loan["status"] == "open"
    r = client.post("/api/v1/returns", json={"item_barcode": "N0001"}, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.get_json()
