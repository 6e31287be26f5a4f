// In-memory data for the examples: a few users and movies, with artificial
// latency so the difference between a miss and a hit is visible.

export interface Movie {
  id: string;
  title: string;
  year: number;
  rating: number;
}

export interface User {
  id: string;
  name: string;
  favourites: string[];
}

const movies = new Map<string, Movie>([
  ['1', { id: '1', title: 'Metropolis', year: 1927, rating: 8.3 }],
  ['2', { id: '2', title: 'Seven Samurai', year: 1954, rating: 8.6 }],
  ['3', { id: '3', title: 'Spirited Away', year: 2001, rating: 8.6 }],
  ['4', { id: '4', title: 'Parasite', year: 2019, rating: 8.5 }],
]);

const users = new Map<string, User>([
  ['u1', { id: 'u1', name: 'Ada', favourites: ['1', '3'] }],
  ['u2', { id: 'u2', name: 'Grace', favourites: ['2'] }],
]);

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Pretends to be a database: every call takes `latencyMs`. */
export const catalog = {
  latencyMs: 50,
  async listMovies(): Promise<Movie[]> {
    await delay(this.latencyMs);
    return [...movies.values()];
  },
  async movie(id: string): Promise<Movie | undefined> {
    await delay(this.latencyMs);
    return movies.get(id);
  },
  async search(q: string): Promise<Movie[]> {
    await delay(this.latencyMs);
    const needle = q.toLowerCase();
    return [...movies.values()].filter((m) => m.title.toLowerCase().includes(needle));
  },
  async updateMovie(id: string, patch: Partial<Omit<Movie, 'id'>>): Promise<Movie | undefined> {
    await delay(this.latencyMs);
    const movie = movies.get(id);
    if (movie === undefined) return undefined;
    Object.assign(movie, patch);
    return movie;
  },
  async user(id: string): Promise<User | undefined> {
    await delay(this.latencyMs);
    return users.get(id);
  },
  async updateUser(id: string, patch: Partial<Omit<User, 'id'>>): Promise<User | undefined> {
    await delay(this.latencyMs);
    const user = users.get(id);
    if (user === undefined) return undefined;
    Object.assign(user, patch);
    return user;
  },
};

/** The cache configuration both examples share: the TTL table is the point. */
export function exampleCacheOptions() {
  return {
    namespace: 'example',
    // REDIS_URL (or TIERCACHE_REDIS_URL, which createCache reads when this is
    // undefined) set: L1 + Redis. Neither: L1 only (no Redis needed at all).
    redis: process.env.REDIS_URL || undefined,
    l1: { maxEntries: 10_000, maxBytes: 32 * 1024 * 1024, ttl: '30s' },
    routes: {
      '/api/movies': '5m',
      '/api/search': { ttl: '30s', vary: ['accept-language'] },
      '/api/users': '1m',
      '/api/admin': false,
    },
  } as const;
}
