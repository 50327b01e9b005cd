# One image for every process of the fleet; docker-compose.yml picks the process with
# `npm run <script>`. TypeScript runs under ts-node (SWC), as with `npm start`.
FROM node:20-bookworm-slim
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund && npm cache clean --force
COPY . .
USER node
ENV NODE_OPTIONS=--enable-source-maps
CMD ["npm", "run", "api"]
