"""Operations around the sandboxes: orphan cleanup and its scheduler, listing, doctor."""
