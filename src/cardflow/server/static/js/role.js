// The logged-in user's role, as the page was served: controls a role may not use are left
// out (the API refuses them anyway). viewer < builder < admin < owner.
const RANKS = { viewer: 0, builder: 1, admin: 2, owner: 3 };

export const role = document.querySelector('meta[name="user-role"]')?.content || "viewer";

export function may(needed) {
  return (RANKS[role] ?? 0) >= RANKS[needed];
}
