"""Client side: put bill images into object storage, then publish BillSubmitted events."""
