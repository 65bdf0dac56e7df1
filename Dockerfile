# The gitops-bot image: what ci-templates/promote.yml runs (its bot_image input).
FROM node:20-alpine AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
RUN npx tsc -p tsconfig.json && npm prune --omit=dev

FROM node:20-alpine
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist/src ./dist/src
RUN ln -s /app/dist/src/cli.js /usr/local/bin/gitops-bot && chmod +x /app/dist/src/cli.js
USER node
ENTRYPOINT ["gitops-bot"]
CMD ["--help"]
